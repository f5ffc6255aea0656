# Get-VMIntegrationService for every VM, or for the referenced ones, in one
# invocation. A reference that matches no VM, or several, becomes a
# non-terminating error tagged with the reference; the others are still read.
param(
    [object[]] $VM
)

$machines = @(Select-HvVM -Refs $VM -All @(Get-VM))
if ($machines.Count -gt 0) {
    foreach ($service in @(Get-VMIntegrationService -VM $machines)) {
        ConvertTo-HvService -Service $service
    }
}
