# Get-VMIntegrationService for every VM, or for the referenced ones, in one
# invocation. A reference that matches no VM, or several, becomes a
# non-terminating error tagged with the reference; the others are still read.
param(
    [object[]] $VM
)

Import-HvHyperV
$machines = @(Select-HvVM -Refs $VM -All @(Hyper-V\Get-VM))
if ($machines.Count -gt 0) {
    foreach ($service in @(Hyper-V\Get-VMIntegrationService -VM $machines)) {
        ConvertTo-HvService -Service $service
    }
}
