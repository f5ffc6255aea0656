# Copy-VMFile -FileSource Host: copy a file from the host into a running
# guest. Checks first what the copy needs, so that a failure says which side
# is off: Guest Service Interface enabled for the VM on the host, and its
# guest side (vmicguestinterface, or hv_fcopy_daemon on Linux) answering.
param(
    [object] $VM,
    [string] $SourcePath,
    [string] $DestinationPath,
    [bool] $CreateFullPath = $false,
    [bool] $Overwrite = $false
)

Import-HvHyperV
$target = Get-HvRefText -Ref $VM
$machine = Resolve-HvVM -Ref $VM -Index (New-HvVMIndex -All @(Hyper-V\Get-VM)) -Target $target
if ($null -eq $machine) { return }
$interfaceId = '6c09bb55-d683-4da0-8931-c9bf705f6480'
$interface = (Get-HvServiceIndex -Machines @($machine)).ByKey["$($machine.Id)|$interfaceId"]
if ($null -eq $interface) {
    Write-HvError -ErrorId 'HvIntegration.ServiceNotFound' -Category 'ObjectNotFound' `
        -Message 'This host has no Guest Service Interface (it arrived with Windows Server 2012 R2).' `
        -Target $target
    return
}
if (-not $interface.Enabled) {
    Write-HvError -ErrorId 'HvIntegration.GuestServiceInterfaceDisabled' -Category 'InvalidOperation' `
        -Message "Guest Service Interface is disabled for '$($machine.Name)' on the host." -Target $target
    return
}
if ($machine.State -ne 'Running') {
    Write-HvError -ErrorId 'HvIntegration.VMNotRunning' -Category 'ResourceUnavailable' `
        -Message "The virtual machine '$($machine.Name)' is $($machine.State); file copy needs it running." `
        -Target $target
    return
}
# The enum, not PrimaryStatusDescription: the description is translated on
# hosts in other display languages.
if ([string] $interface.PrimaryOperationalStatus -ne 'Ok') {
    Write-HvError -ErrorId 'HvIntegration.GuestServiceNotRunning' -Category 'ResourceUnavailable' `
        -Message "The guest side of Guest Service Interface does not answer ($($interface.PrimaryStatusDescription))." `
        -Target $target
    return
}
if (-not (Microsoft.PowerShell.Management\Test-Path -LiteralPath $SourcePath -PathType 'Leaf')) {
    Write-HvError -ErrorId 'HvIntegration.SourceNotFound' -Category 'ObjectNotFound' `
        -Message "The host has no file '$SourcePath'." -Target $target
    return
}
Hyper-V\Copy-VMFile -VM $machine -SourcePath $SourcePath -DestinationPath $DestinationPath `
    -FileSource 'Host' -CreateFullPath:$CreateFullPath -Force:$Overwrite
[pscustomobject] @{
    VMName          = [string] $machine.Name
    VMId            = [string] $machine.Id
    SourcePath      = $SourcePath
    DestinationPath = $DestinationPath
    Size            = [long] (Microsoft.PowerShell.Management\Get-Item -LiteralPath $SourcePath).Length
}
