# Get-VM for every VM, or for the referenced ones, as summaries.
param(
    [object[]] $VM
)

$all = @(Get-VM)
if ($null -eq $VM) {
    $machines = $all
} else {
    $machines = @(foreach ($ref in $VM) { Resolve-HvVM -Ref $ref -All $all -Target (Get-HvRefText -Ref $ref) })
}
foreach ($machine in $machines) {
    if ($null -eq $machine) { continue }
    [pscustomobject] @{
        Name                       = [string] $machine.Name
        Id                         = [string] $machine.Id
        State                      = $machine.State.ToString()
        Generation                 = [int] $machine.Generation
        IntegrationServicesVersion = [string] $machine.IntegrationServicesVersion
        ComputerName               = [string] $machine.ComputerName
    }
}
