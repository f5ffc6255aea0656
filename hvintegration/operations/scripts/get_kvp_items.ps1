# Key-Value Pair Exchange (Data Exchange) items of every VM, or of the
# referenced ones, in one invocation: per VM one object with the guest's
# intrinsic items (Msvm_KvpExchangeComponent.GuestIntrinsicExchangeItems),
# the items the guest published (GuestExchangeItems) and the items the host
# sends (Msvm_KvpExchangeComponentSettingData.HostExchangeItems), each a list
# of {Name; Data}. A reference that matches no VM, or several, becomes a
# non-terminating error tagged with the reference; the others are still read.
#
# The classes live in root\virtualization\v2 (Hyper-V WMI provider, V2):
# https://learn.microsoft.com/windows/win32/hyperv_v2/msvm-kvpexchangecomponent
# https://learn.microsoft.com/windows/win32/hyperv_v2/msvm-kvpexchangecomponentsettingdata
# Each item is an embedded Msvm_KvpExchangeDataItem instance in CIM-XML
# (DMTF DSP0201): <INSTANCE CLASSNAME="Msvm_KvpExchangeDataItem"><PROPERTY
# NAME="Name" TYPE="string"><VALUE>...</VALUE></PROPERTY>...</INSTANCE>.
param(
    [object[]] $VM
)

#include _kvp_items.ps1

function Get-HvHostKvpIndex {
    # The host's items of every VM, from one read of every
    # Msvm_KvpExchangeComponentSettingData on the host, indexed by the
    # lower-cased VM id. A setting data's InstanceID is
    # "Microsoft:<GUID>\<device-specific data>", where GUID is that of the
    # settings it belongs to: the VM's own id for its current settings
    # (Msvm_VirtualSystemSettingData.InstanceID "Microsoft:<VM GUID>"), a
    # checkpoint's id for a checkpoint's settings, which so match no VM
    # (https://learn.microsoft.com/previous-versions/windows/desktop/virtual/msvm-kvpexchangecomponentsettingdata,
    # https://learn.microsoft.com/previous-versions/windows/desktop/virtual/msvm-virtualsystemsettingdata;
    # the same "Microsoft:<VM id>\<component GUID>" is the Id of
    # Get-VMIntegrationService). Each value is a list of {Name; Data}.
    param([string] $Namespace)
    $index = @{}
    $pattern = '^Microsoft:([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})\\'
    foreach ($setting in @(CimCmdlets\Get-CimInstance -Namespace $Namespace `
            -ClassName 'Msvm_KvpExchangeComponentSettingData')) {
        $match = [regex]::Match([string] $setting.InstanceID, $pattern)
        if (-not $match.Success) { continue }
        $key = $match.Groups[1].Value.ToLowerInvariant()
        if (-not $index.ContainsKey($key)) { $index[$key] = [System.Collections.Generic.List[object]]::new() }
        foreach ($item in @(ConvertFrom-HvKvpXml -Items $setting.HostExchangeItems)) { $index[$key].Add($item) }
    }
    return $index
}

Import-HvHyperV
$machines = @(Select-HvVM -Refs $VM -All @(Hyper-V\Get-VM))
if ($machines.Count -eq 0) { return }
$namespace = 'root\virtualization\v2'
# One query per class for the whole host, joined to the VMs by id: the
# component's SystemName is the VM id (Msvm_ComputerSystem.Name), the
# setting data's InstanceID starts with it. The loop below only looks up.
$components = @{}
foreach ($component in @(CimCmdlets\Get-CimInstance -Namespace $namespace -ClassName 'Msvm_KvpExchangeComponent')) {
    $components[([string] $component.SystemName).ToLowerInvariant()] = $component
}
$hostIndex = Get-HvHostKvpIndex -Namespace $namespace
foreach ($machine in $machines) {
    $id = ([string] $machine.Id).ToLowerInvariant()
    $intrinsic = @()
    $guest = @()
    $component = $components[$id]
    if ($null -ne $component) {
        $intrinsic = @(ConvertFrom-HvKvpXml -Items $component.GuestIntrinsicExchangeItems)
        $guest = @(ConvertFrom-HvKvpXml -Items $component.GuestExchangeItems)
    }
    # The host's items belong to the VM's current settings, not a checkpoint's.
    $hostItems = @()
    if ($hostIndex.ContainsKey($id)) { $hostItems = $hostIndex[$id].ToArray() }
    [pscustomobject] @{
        VMName    = [string] $machine.Name
        VMId      = [string] $machine.Id
        State     = $machine.State.ToString()
        Intrinsic = [object[]] $intrinsic
        Guest     = [object[]] $guest
        Host      = [object[]] $hostItems
    }
}
