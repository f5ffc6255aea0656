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
# A call that returns 4096 started a job, which is waited for without polling
# (Wait-HvKvpJob); WaitSeconds is one budget for every job of the invocation,
# kept below the caller's timeout so that a job still running is reported
# rather than lost. The host is read a fixed number of times whatever the
# number of items: the VMs, the VM's system, the management service, the
# host items before and after, and at most two reads of each job. The
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

#include _kvp_items.ps1

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
    # The VM's HostExchangeItems, from one read of every
    # Msvm_KvpExchangeComponentSettingData on the host: those whose InstanceID
    # is "Microsoft:<VM id>\<device-specific data>", the VM's current
    # settings. A checkpoint's setting data carries the checkpoint's own GUID
    # instead, as its Msvm_VirtualSystemSettingData.InstanceID does
    # (https://learn.microsoft.com/previous-versions/windows/desktop/virtual/msvm-kvpexchangecomponentsettingdata,
    # https://learn.microsoft.com/previous-versions/windows/desktop/virtual/msvm-virtualsystemsettingdata;
    # the same "Microsoft:<VM id>\<component GUID>" is the Id of
    # Get-VMIntegrationService). The id is compared in PowerShell, not in a
    # WQL LIKE, whose backslash rules differ from the rest of WQL.
    param(
        [string] $Namespace,
        [string] $VMId
    )
    $prefix = 'Microsoft:' + $VMId + '\'
    foreach ($setting in @(CimCmdlets\Get-CimInstance -Namespace $Namespace `
            -ClassName 'Msvm_KvpExchangeComponentSettingData')) {
        if (([string] $setting.InstanceID).StartsWith($prefix, [System.StringComparison]::OrdinalIgnoreCase)) {
            ConvertFrom-HvKvpXml -Items $setting.HostExchangeItems
        }
    }
}

function Wait-HvKvpJob {
    # The job once it has ended, or as it is when the deadline comes, read at
    # most twice and never polled: subscribe to the change that ends it, read
    # it (it may have ended before the subscription began), and while it runs
    # wait for that one event until the deadline, then read it again. The
    # event is WMI's __InstanceModificationEvent of this Msvm_ConcreteJob
    # entering any state but New 2, Starting 3, Running 4 and Shutting Down 6
    # (https://learn.microsoft.com/windows/win32/wmisdk/--instancemodificationevent;
    # WITHIN 1: WMI looks once a second). The job's InstanceID is text the
    # host returned, never the caller's; it goes into the query as a WQL
    # string with backslashes and quotes escaped by a backslash
    # (https://learn.microsoft.com/windows/win32/wmisdk/where-clause).
    param(
        [string] $Namespace,
        [object] $Job,
        [DateTime] $Deadline
    )
    $id = ([string] $Job.InstanceID).Replace('\', '\\').Replace("'", "\'").Replace('"', '\"')
    $query = "SELECT * FROM __InstanceModificationEvent WITHIN 1 WHERE TargetInstance ISA 'Msvm_ConcreteJob' " +
        "AND TargetInstance.InstanceID = '$id' AND TargetInstance.JobState <> 2 " +
        'AND TargetInstance.JobState <> 3 AND TargetInstance.JobState <> 4 AND TargetInstance.JobState <> 6'
    $source = 'HvIntegration.KvpJob.' + [guid]::NewGuid().ToString()
    $null = CimCmdlets\Register-CimIndicationEvent -Namespace $Namespace -Query $query -SourceIdentifier $source
    try {
        $current = CimCmdlets\Get-CimInstance -InputObject $Job -ErrorAction Stop
        # Whole seconds, rounded down: the wait never outlasts the deadline.
        $seconds = [int] [Math]::Floor(($Deadline - [DateTime]::UtcNow).TotalSeconds)
        if ((@(2, 3, 4, 6) -contains [int] $current.JobState) -and $seconds -ge 1) {
            $null = Microsoft.PowerShell.Utility\Wait-Event -SourceIdentifier $source -Timeout $seconds
            $current = CimCmdlets\Get-CimInstance -InputObject $current -ErrorAction Stop
        }
    } finally {
        # The session runs later requests: leave no subscription or event behind.
        Microsoft.PowerShell.Utility\Unregister-Event -SourceIdentifier $source -ErrorAction SilentlyContinue
        Microsoft.PowerShell.Utility\Remove-Event -SourceIdentifier $source -ErrorAction SilentlyContinue
    }
    return $current
}

function Invoke-HvKvpMethod {
    # Call one KVP method and wait for its job. Returns $null when it
    # succeeded, else {ErrorId; Message; Details} describing the failure.
    param(
        [string] $Namespace,
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
        # Members.Match: PowerShell logs as suspicious any script that names
        # the property table's member.
        $native = @($_.Exception.PSObject.Members.Match('NativeErrorCode'))
        if ($native.Count -gt 0 -and "$($native[0].Value)" -eq 'AccessDenied') { $code = "`nReturnValue=32769" }
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
        $job = Wait-HvKvpJob -Namespace $Namespace -Job $outcome.Job -Deadline $Deadline
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

function Invoke-HvKvpStep {
    # One of the three calls with every item of its kind, unless there are
    # none or an earlier step failed; records what became of each item in
    # $Changes. Returns $true when it failed, so that the later steps are
    # not made.
    param(
        [string] $Method,
        [string] $Action,
        [object] $Plan,
        [object] $Context,
        [System.Collections.Generic.List[object]] $Changes
    )
    $items = [string[]] $Plan.Calls[$Method]
    if ($items.Count -eq 0) { return $false }
    $failure = Invoke-HvKvpMethod -Namespace $Context.Namespace -Service $Context.Service `
        -System $Context.System -Method $Method -Items $items -Deadline $Context.Deadline `
        -WaitSeconds $Context.WaitSeconds
    if ($null -ne $failure) {
        $outcome = 'failed'
        if ($failure.ErrorId -eq 'HvIntegration.KvpJobTimedOut') { $outcome = 'pending' }
        foreach ($name in $Plan.Pending[$Method]) {
            $Changes.Add([pscustomobject] @{ Name = $name; Action = $outcome })
        }
        Write-HvError -ErrorId $failure.ErrorId -Category 'InvalidOperation' -Message $failure.Message `
            -Target $Context.Target -Details $failure.Details
        return $true
    }
    foreach ($name in $Plan.Pending[$Method]) {
        $Changes.Add([pscustomobject] @{ Name = $name; Action = $Action })
    }
    return $false
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
foreach ($item in @(Get-HvHostKvpItems -Namespace $namespace -VMId $vmId)) { $existing[$item.Name] = $item.Data }

$changes = [System.Collections.Generic.List[object]]::new()
$calls = @{ RemoveKvpItems = @(); ModifyKvpItems = @(); AddKvpItems = @() }
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

# Three steps in this order, each one call with all its items; written out
# rather than looped so that each call, and the job it waits for, is
# plainly made once.
$plan = [pscustomobject] @{ Calls = $calls; Pending = $pending }
$context = [pscustomobject] @{
    Namespace   = $namespace
    Service     = $service
    System      = $system
    Target      = $target
    Deadline    = [DateTime]::UtcNow.AddSeconds($WaitSeconds)
    WaitSeconds = $WaitSeconds
}
$failed = Invoke-HvKvpStep -Method 'RemoveKvpItems' -Action 'removed' -Plan $plan -Context $context -Changes $changes
if (-not $failed) {
    $failed = Invoke-HvKvpStep -Method 'ModifyKvpItems' -Action 'modified' -Plan $plan -Context $context `
        -Changes $changes
}
if (-not $failed) {
    $failed = Invoke-HvKvpStep -Method 'AddKvpItems' -Action 'added' -Plan $plan -Context $context -Changes $changes
}

[pscustomobject] @{
    VMName  = [string] $machine.Name
    VMId    = [string] $machine.Id
    Changes = [object[]] $changes.ToArray()
    Host    = [object[]] @(Get-HvHostKvpItems -Namespace $namespace -VMId $vmId)
}
