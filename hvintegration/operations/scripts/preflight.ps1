# Read-only facts about a Hyper-V host for `hvintegration doctor`
# (HyperVHost.preflight): who runs this session, which PowerShell, whether
# the Hyper-V module loads and which command an unqualified Get-VM resolves
# to, what PowerShell Direct needs, and one dry read of what each host
# operation uses. Every probe is caught and reported, so one problem never
# hides the next; nothing is changed. One output object.
param(
)

function ConvertTo-HvProbe {
    # One probe's outcome: what it counted, or the error that stopped it.
    param(
        [string] $Operation,
        [int] $Count,
        [object] $Failure
    )
    $errorId = ''
    $message = ''
    if ($null -ne $Failure) {
        $errorId = [string] $Failure.FullyQualifiedErrorId
        $message = [string] $Failure.Exception.Message
    }
    [pscustomobject] @{
        Operation = $Operation
        Ok        = ($null -eq $Failure)
        Count     = $Count
        ErrorId   = $errorId
        Message   = $message
    }
}

function Get-HvHyperVCommandCount {
    # How many of the named Hyper-V cmdlets exist; a missing one is an error.
    param([string[]] $Name)
    $found = @(Microsoft.PowerShell.Core\Get-Command -Name $Name -Module 'Hyper-V' -CommandType 'Cmdlet' `
        -ErrorAction 'Stop')
    if ($found.Count -ne $Name.Count) {
        throw [System.Management.Automation.CommandNotFoundException]::new(
            "The Hyper-V module lacks one of: $($Name -join ', ').")
    }
    return $found.Count
}

# Who runs the session. "Hyper-V Administrators" is the well-known group
# S-1-5-32-578 (Windows security identifiers, "Well-known SIDs"); its
# members may use every Hyper-V cmdlet without being administrators.
$identity = [System.Security.Principal.WindowsIdentity]::GetCurrent()
$principal = [System.Security.Principal.WindowsPrincipal]::new($identity)
$administratorRole = [System.Security.Principal.WindowsBuiltInRole]::Administrator
$isAdministrator = $principal.IsInRole($administratorRole)
$hyperVAdministrators = [System.Security.Principal.SecurityIdentifier]::new('S-1-5-32-578')
$isHyperVAdministrator = $principal.IsInRole($hyperVAdministrators)

# Which command a plain Get-VM runs: Get-Command without -All returns the
# one that would run ("Get-Command", parameter All), with -All every one.
$resolved = @(Microsoft.PowerShell.Core\Get-Command -Name 'Get-VM' -ErrorAction 'SilentlyContinue')
$resolvesTo = ''
if ($resolved.Count -gt 0) { $resolvesTo = "$($resolved[0].Source)\$($resolved[0].Name)" }
$candidates = [string[]] @(
    Microsoft.PowerShell.Core\Get-Command -Name 'Get-VM' -All -ErrorAction 'SilentlyContinue' |
        Microsoft.PowerShell.Core\ForEach-Object { "$($_.Source)\$($_.Name)" })

$moduleFailure = $null
try {
    Import-HvHyperV
} catch {
    $moduleFailure = $_
}

# PowerShell Direct is Invoke-Command -VMId, which exists from Windows 10 /
# Windows Server 2016 on ("Manage Windows virtual machines with PowerShell
# Direct").
$invoke = Microsoft.PowerShell.Core\Get-Command -Name 'Invoke-Command' -Module 'Microsoft.PowerShell.Core' `
    -CommandType 'Cmdlet'
$directSupported = [bool] $invoke.Parameters.ContainsKey('VMId')

$probes = @()
$machines = @()
if ($null -eq $moduleFailure) {
    try {
        $machines = @(Hyper-V\Get-VM)
        $probes += ConvertTo-HvProbe -Operation 'list_vms' -Count $machines.Count -Failure $null
        try {
            $services = @()
            if ($machines.Count -gt 0) { $services = @(Hyper-V\Get-VMIntegrationService -VM $machines) }
            $probes += ConvertTo-HvProbe -Operation 'get_integration_services' -Count $services.Count `
                -Failure $null
        } catch {
            $probes += ConvertTo-HvProbe -Operation 'get_integration_services' -Count 0 -Failure $_
        }
    } catch {
        $probes += ConvertTo-HvProbe -Operation 'list_vms' -Count 0 -Failure $_
        $probes += ConvertTo-HvProbe -Operation 'get_integration_services' -Count 0 -Failure $_
    }
    $writes = @(
        @('set_integration_services', @('Enable-VMIntegrationService', 'Disable-VMIntegrationService')),
        @('copy_vm_file', @('Copy-VMFile'))
    )
    foreach ($write in $writes) {
        try {
            $count = Get-HvHyperVCommandCount -Name $write[1]
            $probes += ConvertTo-HvProbe -Operation $write[0] -Count $count -Failure $null
        } catch {
            $probes += ConvertTo-HvProbe -Operation $write[0] -Count 0 -Failure $_
        }
    }
}

$moduleErrorId = ''
$moduleMessage = ''
if ($null -ne $moduleFailure) {
    $moduleErrorId = [string] $moduleFailure.FullyQualifiedErrorId
    $moduleMessage = [string] $moduleFailure.Exception.Message
}
[pscustomobject] @{
    ComputerName          = [string] $env:COMPUTERNAME
    UserName              = [string] $identity.Name
    PSEdition             = [string] $PSVersionTable.PSEdition
    PSVersion             = [string] $PSVersionTable.PSVersion
    LanguageMode          = [string] $ExecutionContext.SessionState.LanguageMode
    OSVersion             = [string] [Environment]::OSVersion.Version
    OSBuild               = [int] [Environment]::OSVersion.Version.Build
    IsAdministrator       = [bool] $isAdministrator
    IsHyperVAdministrator = [bool] $isHyperVAdministrator
    HyperVModuleLoaded    = ($null -eq $moduleFailure)
    HyperVModuleErrorId   = $moduleErrorId
    HyperVModuleMessage   = $moduleMessage
    GetVMResolvesTo       = $resolvesTo
    GetVMCommands         = $candidates
    DirectSupported       = $directSupported
    VMs                   = @($machines | Microsoft.PowerShell.Utility\Select-Object -First 100 |
        Microsoft.PowerShell.Core\ForEach-Object {
            [pscustomobject] @{
                Name                       = [string] $_.Name
                State                      = $_.State.ToString()
                IntegrationServicesVersion = [string] $_.IntegrationServicesVersion
            }
        })
    VMCount               = $machines.Count
    Probes                = $probes
}
