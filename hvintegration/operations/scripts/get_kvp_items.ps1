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

function ConvertFrom-HvKvpXml {
    # The Name and Data of each embedded Msvm_KvpExchangeDataItem. Parsed as
    # XML, never evaluated; an item without a Name is skipped.
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

Import-HvHyperV
$machines = @(Select-HvVM -Refs $VM -All @(Hyper-V\Get-VM))
if ($machines.Count -eq 0) { return }
$namespace = 'root\virtualization\v2'
# One query per class for the whole host, joined to the VMs by id: the
# component's SystemName is the VM id (Msvm_ComputerSystem.Name).
$components = @{}
foreach ($component in @(CimCmdlets\Get-CimInstance -Namespace $namespace -ClassName 'Msvm_KvpExchangeComponent')) {
    $components[([string] $component.SystemName).ToLowerInvariant()] = $component
}
$systems = @{}
foreach ($system in @(CimCmdlets\Get-CimInstance -Namespace $namespace -ClassName 'Msvm_ComputerSystem')) {
    $systems[([string] $system.Name).ToLowerInvariant()] = $system
}
foreach ($machine in $machines) {
    $id = ([string] $machine.Id).ToLowerInvariant()
    $intrinsic = @()
    $guest = @()
    $component = $components[$id]
    if ($null -ne $component) {
        $intrinsic = @(ConvertFrom-HvKvpXml -Items $component.GuestIntrinsicExchangeItems)
        $guest = @(ConvertFrom-HvKvpXml -Items $component.GuestExchangeItems)
    }
    # The host's items belong to the VM's current settings: the setting data
    # that defines its state (Msvm_SettingsDefineState), not a checkpoint's.
    $hostItems = @()
    $system = $systems[$id]
    if ($null -ne $system) {
        $settings = @(CimCmdlets\Get-CimAssociatedInstance -InputObject $system `
            -Association 'Msvm_SettingsDefineState' -ResultClassName 'Msvm_VirtualSystemSettingData')
        foreach ($setting in $settings) {
            $kvpSettings = @(CimCmdlets\Get-CimAssociatedInstance -InputObject $setting `
                -ResultClassName 'Msvm_KvpExchangeComponentSettingData')
            foreach ($kvpSetting in $kvpSettings) {
                $hostItems += @(ConvertFrom-HvKvpXml -Items $kvpSetting.HostExchangeItems)
            }
        }
    }
    [pscustomobject] @{
        VMName    = [string] $machine.Name
        VMId      = [string] $machine.Id
        State     = $machine.State.ToString()
        Intrinsic = [object[]] $intrinsic
        Guest     = [object[]] $guest
        Host      = [object[]] $hostItems
    }
}
