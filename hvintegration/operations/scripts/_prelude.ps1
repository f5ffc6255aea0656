# Shared helpers, placed before every operation script. Values reach these
# scripts only as parameters; nothing here is built from caller text.
# Every cmdlet is called by its module-qualified name (Hyper-V\Get-VM,
# Microsoft.PowerShell.Management\Get-Service): a qualified name never
# resolves to another module's command of the same name (VMware PowerCLI also
# exports Get-VM), nor to an alias or function a profile defined.
# tests/test_script_commands.py checks every command of every shipped script.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

# Constrained Language (a WDAC or AppLocker lockdown) refuses the .NET calls
# the operations make, so stop here with one clear error instead of a
# confusing one later. "about_Language_Modes": the LanguageMode property of
# the session state tells the mode; JEA endpoints (NoLanguage) refuse any
# script before this line runs, and the library maps that refusal itself.
if ($ExecutionContext.SessionState.LanguageMode -ne 'FullLanguage') {
    Microsoft.PowerShell.Utility\Write-Error -ErrorId 'HvIntegration.LanguageModeUnsupported' `
        -Category 'PermissionDenied' -TargetObject ([string] $ExecutionContext.SessionState.LanguageMode) `
        -Message ("This PowerShell session runs in $($ExecutionContext.SessionState.LanguageMode) mode; " +
            'the library needs FullLanguage: connect to an endpoint that is not constrained ' +
            '(the default Microsoft.PowerShell session configuration, not a JEA endpoint).') `
        -ErrorAction 'Stop'
}

function Import-HvHyperV {
    # Host operations load the Hyper-V module explicitly, so that a host
    # without it gets one specific error naming the host and the module,
    # and refuse a PowerShell whose Hyper-V cmdlets are not native.
    # PowerShell 7 runs Hyper-V natively only from Windows Server 2019 /
    # Windows 10 1809 (build 17763) on ("PowerShell 7 module compatibility",
    # https://learn.microsoft.com/powershell/windows/module-compatibility:
    # Hyper-V, Natively Compatible, Windows Server 1809+). On older builds it
    # loads the module through Windows PowerShell compatibility, whose
    # commands are proxy functions returning deserialized objects
    # (about_Windows_PowerShell_Compatibility), which -VM parameters refuse.
    $computer = [string] $env:COMPUTERNAME
    $advice = 'Use Windows PowerShell 5.1 instead: executable=powershell for local:// and ssh://, ' +
        'or the default WinRM endpoint configuration=Microsoft.PowerShell for psrp://.'
    $build = [Environment]::OSVersion.Version.Build
    if ($PSVersionTable.PSEdition -eq 'Core' -and $build -lt 17763) {
        Microsoft.PowerShell.Utility\Write-Error -ErrorId 'HvIntegration.PowerShellCoreWithoutHyperV' `
            -Category 'NotImplemented' -TargetObject $computer `
            -Message ("PowerShell $($PSVersionTable.PSVersion) on '$computer' (Windows build $build) " +
                "has no native Hyper-V module; it needs Windows build 17763 or newer. $advice") `
            -ErrorAction 'Stop'
    }
    try {
        Microsoft.PowerShell.Core\Import-Module -Name 'Hyper-V' -ErrorAction 'Stop'
    } catch {
        Microsoft.PowerShell.Utility\Write-Error -ErrorId 'HvIntegration.HyperVModuleMissing' `
            -Category 'ObjectNotFound' -TargetObject $computer `
            -Message ("The Hyper-V PowerShell module (Hyper-V) is not installed on '$computer': " +
                "$($_.Exception.Message) Install the Hyper-V management tools " +
                '(Windows feature Hyper-V-PowerShell, or Microsoft-Hyper-V-Management-PowerShell).') `
            -ErrorAction 'Stop'
    }
    $getVM = Microsoft.PowerShell.Core\Get-Command -Name 'Get-VM' -Module 'Hyper-V' -CommandType 'Cmdlet' `
        -ErrorAction 'SilentlyContinue'
    if ($null -eq $getVM) {
        Microsoft.PowerShell.Utility\Write-Error -ErrorId 'HvIntegration.PowerShellCoreWithoutHyperV' `
            -Category 'NotImplemented' -TargetObject $computer `
            -Message ("PowerShell $($PSVersionTable.PSVersion) on '$computer' loaded the Hyper-V module " +
                "through Windows PowerShell compatibility, whose objects the Hyper-V cmdlets refuse. $advice") `
            -ErrorAction 'Stop'
    }
}

function Write-HvError {
    # A non-terminating error that names the batch item it belongs to, so a
    # failed item is reported while the rest of the batch goes on.
    param(
        [string] $ErrorId,
        [System.Management.Automation.ErrorCategory] $Category,
        [string] $Message,
        [object] $Target,
        [string] $Details = ''
    )
    $exception = [System.Exception]::new($Message)
    $record = [System.Management.Automation.ErrorRecord]::new($exception, $ErrorId, $Category, $Target)
    if ($Details) {
        $record.ErrorDetails = [System.Management.Automation.ErrorDetails]::new($Message)
        $record.ErrorDetails.RecommendedAction = $Details
    }
    Microsoft.PowerShell.Utility\Write-Error -ErrorRecord $record -ErrorAction 'Continue'
}

function Write-HvFailure {
    # Re-report a caught cmdlet failure as a non-terminating error tagged
    # with the batch item, keeping the original id and category.
    param(
        [System.Management.Automation.ErrorRecord] $Failure,
        [object] $Target
    )
    $record = [System.Management.Automation.ErrorRecord]::new(
        $Failure.Exception, $Failure.FullyQualifiedErrorId, $Failure.CategoryInfo.Category, $Target)
    Microsoft.PowerShell.Utility\Write-Error -ErrorRecord $record -ErrorAction 'Continue'
}

function Get-HvRefText {
    param([object] $Ref)
    if ($null -ne $Ref.Id -and "$($Ref.Id)" -ne '') { return "$($Ref.Id)" }
    return [string] $Ref.Name
}

function New-HvVMIndex {
    # One pass over the VMs Get-VM returned: an index by id and one by
    # lower-cased name, so that resolving a reference is one lookup, never
    # a scan of every VM (an operation stays O(VMs + references)).
    param([object[]] $All)
    $byId = @{}
    $byName = @{}
    foreach ($machine in $All) {
        $byId["$($machine.Id)"] = $machine
        $key = ([string] $machine.Name).ToLowerInvariant()
        if (-not $byName.ContainsKey($key)) { $byName[$key] = [System.Collections.Generic.List[object]]::new() }
        $byName[$key].Add($machine)
    }
    [pscustomobject] @{
        All    = $All
        ById   = $byId
        ByName = $byName
    }
}

function Resolve-HvVM {
    # Find exactly one VM for a reference ({Name} or {Id}) in an index made
    # by New-HvVMIndex. Names compare exactly but case-insensitively (as
    # -eq does), never as wildcards.
    param(
        [object] $Ref,
        [object] $Index,
        [object] $Target
    )
    $found = @()
    if ($null -ne $Ref.Id -and "$($Ref.Id)" -ne '') {
        $key = ([guid] "$($Ref.Id)").ToString()
        if ($Index.ById.ContainsKey($key)) { $found = @($Index.ById[$key]) }
    } else {
        $key = ([string] $Ref.Name).ToLowerInvariant()
        if ($Index.ByName.ContainsKey($key)) { $found = @($Index.ByName[$key]) }
    }
    if ($found.Count -eq 1) { return $found[0] }
    $text = Get-HvRefText -Ref $Ref
    if ($found.Count -eq 0) {
        # One name per line; '%', CR and LF inside a name are percent-encoded
        # so that a name holding a line break stays one name.
        $known = ($Index.All | Microsoft.PowerShell.Utility\Select-Object -First 50 |
            Microsoft.PowerShell.Core\ForEach-Object {
                ([string] $_.Name).Replace('%', '%25').Replace("`r", '%0D').Replace("`n", '%0A')
            }) -join "`n"
        Write-HvError -ErrorId 'HvIntegration.VMNotFound' -Category 'ObjectNotFound' `
            -Message "Hyper-V was unable to find a virtual machine with name or id '$text'." `
            -Target $Target -Details $known
    } else {
        $ids = ($found | Microsoft.PowerShell.Core\ForEach-Object { "$($_.Id)" }) -join "`n"
        Write-HvError -ErrorId 'HvIntegration.AmbiguousVMName' -Category 'InvalidArgument' `
            -Message "More than one virtual machine is named '$text'." `
            -Target $Target -Details $ids
    }
    return $null
}

function Select-HvVM {
    # Every VM when no references are given, else the VM of each reference;
    # references that match no VM or several are reported and skipped.
    param(
        [object[]] $Refs,
        [object[]] $All
    )
    if ($null -eq $Refs) { return $All }
    $index = New-HvVMIndex -All $All
    foreach ($ref in $Refs) {
        $found = Resolve-HvVM -Ref $ref -Index $index -Target (Get-HvRefText -Ref $ref)
        if ($null -ne $found) { $found }
    }
}

function Get-HvServiceIndex {
    # One Get-VMIntegrationService for every VM given, indexed by
    # "<VM id>|<component GUID>" (lower case), with each VM's service names
    # for error details. The caller reads it instead of asking Hyper-V again
    # per change.
    param([object[]] $Machines)
    $byKey = @{}
    $names = @{}
    if ($Machines.Count -eq 0) {
        return [pscustomobject] @{ ByKey = $byKey; Names = $names }
    }
    foreach ($service in @(Hyper-V\Get-VMIntegrationService -VM $Machines)) {
        $vmKey = "$($service.VMId)"
        $componentId = ([string] $service.Id).Split('\')[-1].ToLowerInvariant()
        $byKey["$vmKey|$componentId"] = $service
        if (-not $names.ContainsKey($vmKey)) { $names[$vmKey] = [System.Collections.Generic.List[string]]::new() }
        $names[$vmKey].Add([string] $service.Name)
    }
    [pscustomobject] @{ ByKey = $byKey; Names = $names }
}

function ConvertTo-HvService {
    # Only the fields the records need; enums become their names here
    # so that every transport carries plain strings.
    param([object] $Service)
    [pscustomobject] @{
        VMName                     = [string] $Service.VMName
        VMId                       = [string] $Service.VMId
        Name                       = [string] $Service.Name
        Id                         = [string] $Service.Id
        Enabled                    = [bool] $Service.Enabled
        PrimaryStatusDescription   = [string] $Service.PrimaryStatusDescription
        SecondaryStatusDescription = [string] $Service.SecondaryStatusDescription
        OperationalStatus          = [string[]] @(
            $Service.OperationalStatus | Microsoft.PowerShell.Core\ForEach-Object { $_.ToString() })
    }
}

function ConvertTo-HvGuestService {
    # A Windows service as the guest-service records need it.
    param([object] $Service)
    [pscustomobject] @{
        Name         = [string] $Service.Name
        Present      = $true
        DisplayName  = [string] $Service.DisplayName
        Status       = $Service.Status.ToString()
        StartType    = $Service.StartType.ToString()
        ComputerName = [string] $env:COMPUTERNAME
    }
}

function Assert-HvGuestServiceName {
    # Only the Hyper-V guest services, by exact name: never a wildcard.
    param([string] $Name)
    if ($Name -notmatch '^vmic[a-z]+$') {
        throw [System.ArgumentException]::new("'$Name' is not a Hyper-V guest service name.")
    }
}
