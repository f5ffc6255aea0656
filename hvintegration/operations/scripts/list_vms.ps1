# Get-VM for every VM, or for the referenced ones, as summaries.
param(
    [object[]] $VM
)

Import-HvHyperV
$machines = @(Select-HvVM -Refs $VM -All @(Hyper-V\Get-VM))
foreach ($machine in $machines) {
    [pscustomobject] @{
        Name                       = [string] $machine.Name
        Id                         = [string] $machine.Id
        State                      = $machine.State.ToString()
        Generation                 = [int] $machine.Generation
        IntegrationServicesVersion = [string] $machine.IntegrationServicesVersion
        # "Up to date", "Update required", or empty when the host cannot tell.
        IntegrationServicesState   = [string] $machine.IntegrationServicesState
        ComputerName               = [string] $machine.ComputerName
    }
}
