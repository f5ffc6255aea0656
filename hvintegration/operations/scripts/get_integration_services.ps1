# Get-VMIntegrationService for every VM, or for the referenced ones, in one
# invocation. A reference that matches no VM, or several, becomes a
# non-terminating error tagged with the reference; the others are still read.
param(
    [object[]] $VM
)

$all = @(Get-VM)
if ($null -eq $VM) {
    $machines = $all
} else {
    $machines = @(foreach ($ref in $VM) {
        $found = Resolve-HvVM -Ref $ref -All $all -Target (Get-HvRefText -Ref $ref)
        if ($null -ne $found) { $found }
    })
}
if ($machines.Count -gt 0) {
    foreach ($service in @(Get-VMIntegrationService -VM $machines)) {
        ConvertTo-HvService -Service $service
    }
}
