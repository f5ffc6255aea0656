# The host's own integration services version, which Get-VM's
# IntegrationServicesState compares a guest's version with. Hosts that ship
# the integration services disk (vmguest.iso, Windows Server 2008 R2 to
# 2012 R2) record the version of the components on it in the registry value
# Microsoft-Hyper-V-Guest-Installer-Win60-Package under
# HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Virtualization\GuestInstaller\Version.
# From Windows 10 and Windows Server 2016 on there is no disk: guests get
# their components through Windows Update, at the host's own build
# ("Manage Hyper-V Integration Services",
# https://learn.microsoft.com/virtualization/hyper-v-on-windows/user-guide/managing-integration-services),
# so the operating system's version is the answer. One output object.
param(
)

Import-HvHyperV
$vmHost = Hyper-V\Get-VMHost
$path = 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Virtualization\GuestInstaller\Version'
$version = ''
$source = 'os-version'
try {
    $value = [string] (Microsoft.PowerShell.Management\Get-ItemPropertyValue -LiteralPath $path `
        -Name 'Microsoft-Hyper-V-Guest-Installer-Win60-Package' -ErrorAction 'Stop')
    if ($value) {
        $version = $value
        $source = 'guest-installer'
    }
} catch {
    # No disk on this host (Windows Server 2016 / Windows 10 and newer).
    $version = ''
}
if (-not $version) { $version = [Environment]::OSVersion.Version.ToString() }
[pscustomobject] @{
    ComputerName               = [string] $vmHost.ComputerName
    IntegrationServicesVersion = $version
    Source                     = $source
}
