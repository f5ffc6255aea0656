# Read-only facts about a Windows guest for `hvintegration doctor`
# (WindowsGuest.preflight): who runs this session, which PowerShell and
# Windows build, whether the account may change services, and one dry read
# of what each guest operation uses. Every probe is caught and reported;
# nothing is changed. One output object.
param(
    [string[]] $Name
)

$identity = [System.Security.Principal.WindowsIdentity]::GetCurrent()
$principal = [System.Security.Principal.WindowsPrincipal]::new($identity)
$administratorRole = [System.Security.Principal.WindowsBuiltInRole]::Administrator
$isAdministrator = $principal.IsInRole($administratorRole)

$services = @()
$readErrorId = ''
$readMessage = ''
try {
    foreach ($serviceName in $Name) {
        Assert-HvGuestServiceName -Name $serviceName
        $service = Microsoft.PowerShell.Management\Get-Service -Name $serviceName -ErrorAction 'SilentlyContinue'
        if ($null -ne $service) { $services += ConvertTo-HvGuestService -Service $service }
    }
} catch {
    $readErrorId = [string] $_.FullyQualifiedErrorId
    $readMessage = [string] $_.Exception.Message
}
$setService = @(Microsoft.PowerShell.Core\Get-Command -Name 'Set-Service' `
    -Module 'Microsoft.PowerShell.Management' -CommandType 'Cmdlet' -ErrorAction 'SilentlyContinue')

[pscustomobject] @{
    ComputerName    = [string] $env:COMPUTERNAME
    UserName        = [string] $identity.Name
    PSEdition       = [string] $PSVersionTable.PSEdition
    PSVersion       = [string] $PSVersionTable.PSVersion
    LanguageMode    = [string] $ExecutionContext.SessionState.LanguageMode
    OSVersion       = [string] [Environment]::OSVersion.Version
    OSBuild         = [int] [Environment]::OSVersion.Version.Build
    IsAdministrator = [bool] $isAdministrator
    Services        = $services
    ReadErrorId     = $readErrorId
    ReadMessage     = $readMessage
    SetServiceFound = ($setService.Count -gt 0)
}
