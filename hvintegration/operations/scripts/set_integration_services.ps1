# Bring integration services to a requested enabled state in one invocation.
# Each change is {VM = {Name}|{Id}; ServiceId = GUID; Enabled = bool}. A
# service already in the requested state is left alone. A failed change is
# reported as a non-terminating error tagged with its index and the other
# changes still run; nothing done is undone.
# Work on the host is O(VMs + changes): one Get-VM and its index, one
# Get-VMIntegrationService for the VMs the changes name before any change
# and one after, and between them only the Enable/Disable calls.
param(
    [object[]] $Changes
)

Import-HvHyperV
$vmIndex = New-HvVMIndex -All @(Hyper-V\Get-VM)
$plan = [System.Collections.Generic.List[object]]::new()
$affected = [ordered]@{}
$done = @{}
for ($index = 0; $index -lt $Changes.Count; $index++) {
    $change = $Changes[$index]
    $machine = Resolve-HvVM -Ref $change.VM -Index $vmIndex -Target $index
    if ($null -eq $machine) { continue }
    $componentId = ([guid] "$($change.ServiceId)").ToString()
    # One VM named twice (by name and by id, say) must not get two
    # contradicting changes to one service: the second is refused.
    $vmKey = "$($machine.Id)"
    $pair = "$vmKey|$componentId"
    if ($done.ContainsKey($pair)) {
        Write-HvError -ErrorId 'HvIntegration.DuplicateChange' -Category 'InvalidArgument' `
            -Message "The virtual machine '$($machine.Name)' is asked to change integration service '$componentId' twice." `
            -Target $index
        continue
    }
    $done[$pair] = $true
    $affected[$vmKey] = $machine
    $plan.Add([pscustomobject] @{
        Index   = $index
        Machine = $machine
        Key     = $pair
        Wanted  = [bool] $change.Enabled
        Changed = $false
    })
}
if ($plan.Count -eq 0) { return }

try {
    $before = Get-HvServiceIndex -Machines @($affected.Values)
} catch {
    # Nothing was changed: every change is reported with the failure.
    $failure = $_
    foreach ($item in $plan) { Write-HvFailure -Failure $failure -Target $item.Index }
    return
}
$applied = [System.Collections.Generic.List[object]]::new()
foreach ($item in $plan) {
    $service = $before.ByKey[$item.Key]
    if ($null -eq $service) {
        $offered = ''
        $vmKey = "$($item.Machine.Id)"
        if ($before.Names.ContainsKey($vmKey)) { $offered = $before.Names[$vmKey] -join "`n" }
        $componentId = $item.Key.Split('|')[-1]
        Write-HvError -ErrorId 'HvIntegration.ServiceNotFound' -Category 'ObjectNotFound' `
            -Message "The virtual machine '$($item.Machine.Name)' has no integration service with id '$componentId'." `
            -Target $item.Index -Details $offered
        continue
    }
    $item.Changed = ([bool] $service.Enabled) -ne $item.Wanted
    try {
        if ($item.Changed -and $item.Wanted) {
            Hyper-V\Enable-VMIntegrationService -VMIntegrationService $service
        } elseif ($item.Changed) {
            Hyper-V\Disable-VMIntegrationService -VMIntegrationService $service
        }
        $applied.Add($item)
    } catch {
        Write-HvFailure -Failure $_ -Target $item.Index
    }
}
if ($applied.Count -eq 0) { return }

$touched = [ordered]@{}
foreach ($item in $applied) { $touched["$($item.Machine.Id)"] = $item.Machine }
try {
    $after = Get-HvServiceIndex -Machines @($touched.Values)
} catch {
    # The changes were made; only reading them back failed.
    $failure = $_
    foreach ($item in $applied) { Write-HvFailure -Failure $failure -Target $item.Index }
    return
}
foreach ($item in $applied) {
    [pscustomobject] @{
        Index   = $item.Index
        Changed = $item.Changed
        Service = ConvertTo-HvService -Service $after.ByKey[$item.Key]
    }
}
