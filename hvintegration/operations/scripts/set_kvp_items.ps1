# Add, modify and remove host-to-guest Key-Value Pair Exchange items of one
# VM in one invocation. Set is a list of {Name; Data}, Remove a list of
# names. Only what differs is sent: an item that already holds the value is
# "unchanged", a removal of an item the host does not have is "absent"
# (RemoveKvpItems would fail on it). Then at most three calls of
# Msvm_VirtualSystemManagementService, in this order, each with every item of
# its kind: RemoveKvpItems, ModifyKvpItems, AddKvpItems
# (https://learn.microsoft.com/windows/win32/hyperv_v2/addkvpitems-msvm-virtualsystemmanagementservice
# and its ModifyKvpItems / RemoveKvpItems pages: Add fails for an item that
# exists, Modify and Remove for one that does not; at most 128 items a call).
# A call that returns 4096 started a job, which is waited for; WaitSeconds
# is one budget for every job of the invocation, kept below the caller's
# timeout so that a job still running is reported rather than lost. The
# first call or job that fails is reported as an error
# (HvIntegration.KvpMethodFailed / KvpJobFailed / KvpJobTimedOut, with the
# method, its return value, the job's state and error code in the details)
# and the later calls are not made; a call that throws (a CIM exception) is
# reported as KvpMethodFailed too. Its items read "pending" when its job was
# still running (it may yet complete) and "failed" otherwise. One output
# object in every case: what was done, and the host items as they are
# afterwards.
param(
    [object] $VM,
    [object[]] $Set,
    [string[]] $Remove,
    [double] $WaitSeconds = 45
)

function ConvertFrom-HvKvpXml {
    # The Name and Data of each embedded Msvm_KvpExchangeDataItem (CIM-XML).
    param([string[]] $Items)
    foreach ($text in @($Items)) {
        if ([string]::IsNullOrEmpty($text)) { continue }
        $document = [System.Xml.XmlDocument]::new()
        $document.XmlResolver = $null
        $document.LoadXml($text)
        $name = $document.SelectSingleNode("/INSTANCE/PROPERTY[@NAME='Name']/VALUE")
        $data = $document.SelectSingleNode("/INSTANCE/PROPERTY[@NAME='Data']/VALUE")
        if ($null -eq $name) { continue }
        $value = ''
        if ($null -ne $data) { $value = [string] $data.InnerText }
        [pscustomobject] @{
            Name = [string] $name.InnerText
            Data = $value
        }
    }
}

function ConvertTo-HvKvpXml {
    # One embedded Msvm_KvpExchangeDataItem in CIM-XML, as
    # ManagementObject.GetText(CimDtd20) writes it. The values go in through
    # the XML DOM, which escapes them; Source 0 is an item the host sends
    # (Msvm_KvpExchangeDataItem, property Source).
    param(
        [string] $Name,
        [string] $Data
    )
    $document = [System.Xml.XmlDocument]::new()
    $instance = $document.CreateElement('INSTANCE')
    $instance.SetAttribute('CLASSNAME', 'Msvm_KvpExchangeDataItem')
    foreach ($property in @(@('Data', 'string', $Data), @('Name', 'string', $Name), @('Source', 'uint16', '0'))) {
        $node = $document.CreateElement('PROPERTY')
        $node.SetAttribute('NAME', $property[0])
        $node.SetAttribute('TYPE', $property[1])
        $value = $document.CreateElement('VALUE')
        $value.InnerText = [string] $property[2]
        [void] $node.AppendChild($value)
        [void] $instance.AppendChild($node)
    }
    [void] $document.AppendChild($instance)
    return $document.OuterXml
}

function Get-HvHostKvpItems {
    # The VM's HostExchangeItems, from the setting data of its current state.
    param([object] $System)
    $settings = @(CimCmdlets\Get-CimAssociatedInstance -InputObject $System `
        -Association 'Msvm_SettingsDefineState' -ResultClassName 'Msvm_VirtualSystemSettingData')
    foreach ($setting in $settings) {
        foreach ($kvpSetting in @(CimCmdlets\Get-CimAssociatedInstance -InputObject $setting `
                -ResultClassName 'Msvm_KvpExchangeComponentSettingData')) {
            ConvertFrom-HvKvpXml -Items $kvpSetting.HostExchangeItems
        }
    }
}

function Invoke-HvKvpMethod {
    # Call one KVP method and wait for its job. Returns $null when it
    # succeeded, else {ErrorId; Message; Details} describing the failure.
    param(
        [object] $Service,
        [object] $System,
        [string] $Method,
        [string[]] $Items,
        [DateTime] $Deadline,
        [double] $WaitSeconds
    )
    # Under $ErrorActionPreference = 'Stop' a CIM exception would end the
    # script before its output: what earlier calls did would be lost.
    try {
        $outcome = CimCmdlets\Invoke-CimMethod -InputObject $Service -MethodName $Method `
            -Arguments @{ TargetSystem = $System; DataItems = $Items } -ErrorAction Stop
    } catch {
        $text = [string] $_.Exception.Message
        $code = ''
        $native = $_.Exception.PSObject.Properties['NativeErrorCode']
        if ($null -ne $native -and "$($native.Value)" -eq 'AccessDenied') { $code = "`nReturnValue=32769" }
        return [pscustomobject] @{
            ErrorId = 'HvIntegration.KvpMethodFailed'
            Message = "$Method failed: $text"
            Details = "Method=$Method$code"
        }
    }
    $code = [int] $outcome.ReturnValue
    if ($code -eq 0) { return $null }
    if ($code -ne 4096) {
        return [pscustomobject] @{
            ErrorId = 'HvIntegration.KvpMethodFailed'
            Message = "$Method returned $code."
            Details = "Method=$Method`nReturnValue=$code"
        }
    }
    # CIM_ConcreteJob.JobState: New 2, Starting 3, Running 4, Shutting Down 6
    # are still going; Completed 7 is success; anything else ended it
    # (https://learn.microsoft.com/windows/win32/hyperv_v2/msvm-concretejob).
    try {
        $job = CimCmdlets\Get-CimInstance -InputObject $outcome.Job -ErrorAction Stop
        while ((@(2, 3, 4, 6) -contains [int] $job.JobState) -and [DateTime]::UtcNow -lt $Deadline) {
            Microsoft.PowerShell.Utility\Start-Sleep -Milliseconds 100
            $job = CimCmdlets\Get-CimInstance -InputObject $job -ErrorAction Stop
        }
    } catch {
        return [pscustomobject] @{
            ErrorId = 'HvIntegration.KvpJobTimedOut'
            Message = "The $Method job could not be read: $([string] $_.Exception.Message); it may still complete."
            Details = "Method=$Method`nReturnValue=4096`nJobState=4"
        }
    }
    $state = [int] $job.JobState
    if ($state -eq 7) { return $null }
    $details = "Method=$Method`nReturnValue=4096`nJobState=$state`nErrorCode=$([int] $job.ErrorCode)"
    if (@(2, 3, 4, 6) -contains $state) {
        return [pscustomobject] @{
            ErrorId = 'HvIntegration.KvpJobTimedOut'
            Message = "The $Method job did not finish within $WaitSeconds seconds (state $state); it may still complete."
            Details = $details
        }
    }
    return [pscustomobject] @{
        ErrorId = 'HvIntegration.KvpJobFailed'
        Message = "The $Method job ended in state $state, error $([int] $job.ErrorCode): $([string] $job.ErrorDescription)"
        Details = $details
    }
}

Import-HvHyperV
$target = Get-HvRefText -Ref $VM
$machine = @(Select-HvVM -Refs @($VM) -All @(Hyper-V\Get-VM))
if ($machine.Count -ne 1) { return }
$machine = $machine[0]
$namespace = 'root\virtualization\v2'
# The filter holds only a GUID the host returned, formatted by [guid]: hex
# digits and hyphens, never caller text.
$vmId = ([guid] "$($machine.Id)").ToString()
$system = CimCmdlets\Get-CimInstance -Namespace $namespace -ClassName 'Msvm_ComputerSystem' -Filter "Name='$vmId'"
$service = CimCmdlets\Get-CimInstance -Namespace $namespace -ClassName 'Msvm_VirtualSystemManagementService'

# A PowerShell hashtable compares keys without case, like the guest's
# registry value names.
$existing = @{}
foreach ($item in @(Get-HvHostKvpItems -System $system)) { $existing[$item.Name] = $item.Data }

$changes = [System.Collections.Generic.List[object]]::new()
$calls = [ordered] @{ RemoveKvpItems = @(); ModifyKvpItems = @(); AddKvpItems = @() }
$actions = @{ RemoveKvpItems = 'removed'; ModifyKvpItems = 'modified'; AddKvpItems = 'added' }
$pending = @{ RemoveKvpItems = @(); ModifyKvpItems = @(); AddKvpItems = @() }
foreach ($name in @($Remove)) {
    if ($null -eq $name) { continue }
    if ($existing.ContainsKey($name)) {
        $calls['RemoveKvpItems'] += ConvertTo-HvKvpXml -Name $name -Data ''
        $pending['RemoveKvpItems'] += $name
    } else {
        $changes.Add([pscustomobject] @{ Name = $name; Action = 'absent' })
    }
}
foreach ($item in @($Set)) {
    if ($null -eq $item) { continue }
    $name = [string] $item.Name
    $data = [string] $item.Data
    if ($existing.ContainsKey($name) -and [string] $existing[$name] -ceq $data) {
        $changes.Add([pscustomobject] @{ Name = $name; Action = 'unchanged' })
    } elseif ($existing.ContainsKey($name)) {
        $calls['ModifyKvpItems'] += ConvertTo-HvKvpXml -Name $name -Data $data
        $pending['ModifyKvpItems'] += $name
    } else {
        $calls['AddKvpItems'] += ConvertTo-HvKvpXml -Name $name -Data $data
        $pending['AddKvpItems'] += $name
    }
}

$deadline = [DateTime]::UtcNow.AddSeconds($WaitSeconds)
foreach ($method in @($calls.Keys)) {
    $items = [string[]] $calls[$method]
    if ($items.Count -eq 0) { continue }
    $failure = Invoke-HvKvpMethod -Service $service -System $system -Method $method -Items $items `
        -Deadline $deadline -WaitSeconds $WaitSeconds
    if ($null -ne $failure) {
        $outcome = 'failed'
        if ($failure.ErrorId -eq 'HvIntegration.KvpJobTimedOut') { $outcome = 'pending' }
        foreach ($name in $pending[$method]) {
            $changes.Add([pscustomobject] @{ Name = $name; Action = $outcome })
        }
        Write-HvError -ErrorId $failure.ErrorId -Category 'InvalidOperation' -Message $failure.Message `
            -Target $target -Details $failure.Details
        break
    }
    foreach ($name in $pending[$method]) {
        $changes.Add([pscustomobject] @{ Name = $name; Action = $actions[$method] })
    }
}

[pscustomobject] @{
    VMName  = [string] $machine.Name
    VMId    = [string] $machine.Id
    Changes = [object[]] $changes.ToArray()
    Host    = [object[]] @(Get-HvHostKvpItems -System $system)
}
