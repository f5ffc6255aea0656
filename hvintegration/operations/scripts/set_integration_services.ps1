# Bring integration services to a requested enabled state in one invocation.
# Each change is {VM = {Name}|{Id}; ServiceId = GUID; Enabled = bool}. A
# service already in the requested state is left alone. A failed change is
# reported as a non-terminating error tagged with its index and the other
# changes still run; nothing done is undone.
param(
    [object[]] $Changes
)

Import-HvHyperV
$all = @(Hyper-V\Get-VM)
$done = @{}
for ($index = 0; $index -lt $Changes.Count; $index++) {
    $change = $Changes[$index]
    $machine = Resolve-HvVM -Ref $change.VM -All $all -Target $index
    if ($null -eq $machine) { continue }
    $componentId = ([guid] "$($change.ServiceId)").ToString()
    # One VM named twice (by name and by id, say) must not get two
    # contradicting changes to one service: the second is refused.
    $pair = "$($machine.Id)|$componentId"
    if ($done.ContainsKey($pair)) {
        Write-HvError -ErrorId 'HvIntegration.DuplicateChange' -Category 'InvalidArgument' `
            -Message "The virtual machine '$($machine.Name)' is asked to change integration service '$componentId' twice." `
            -Target $index
        continue
    }
    $done[$pair] = $true
    try {
        $services = @(Hyper-V\Get-VMIntegrationService -VM $machine)
        $service = $services |
            Microsoft.PowerShell.Core\Where-Object { (Get-HvComponentId -Service $_) -eq $componentId } |
            Microsoft.PowerShell.Utility\Select-Object -First 1
        if ($null -eq $service) {
            $offered = ($services | Microsoft.PowerShell.Core\ForEach-Object { $_.Name }) -join "`n"
            Write-HvError -ErrorId 'HvIntegration.ServiceNotFound' -Category 'ObjectNotFound' `
                -Message "The virtual machine '$($machine.Name)' has no integration service with id '$componentId'." `
                -Target $index -Details $offered
            continue
        }
        $wanted = [bool] $change.Enabled
        $changed = ([bool] $service.Enabled) -ne $wanted
        if ($changed -and $wanted) {
            Hyper-V\Enable-VMIntegrationService -VMIntegrationService $service
        } elseif ($changed) {
            Hyper-V\Disable-VMIntegrationService -VMIntegrationService $service
        }
        $after = @(Hyper-V\Get-VMIntegrationService -VM $machine) |
            Microsoft.PowerShell.Core\Where-Object { (Get-HvComponentId -Service $_) -eq $componentId } |
            Microsoft.PowerShell.Utility\Select-Object -First 1
        [pscustomobject] @{
            Index   = $index
            Changed = $changed
            Service = ConvertTo-HvService -Service $after
        }
    } catch {
        Write-HvFailure -Failure $_ -Target $index
    }
}
