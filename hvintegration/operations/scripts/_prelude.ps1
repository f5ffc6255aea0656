# Shared helpers, placed before every operation script. Values reach these
# scripts only as parameters; nothing here is built from caller text.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

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
    Write-Error -ErrorRecord $record -ErrorAction 'Continue'
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
    Write-Error -ErrorRecord $record -ErrorAction 'Continue'
}

function Get-HvRefText {
    param([object] $Ref)
    if ($null -ne $Ref.Id -and "$($Ref.Id)" -ne '') { return "$($Ref.Id)" }
    return [string] $Ref.Name
}

function Resolve-HvVM {
    # Find exactly one VM for a reference ({Name} or {Id}) among $All.
    # Names compare with -eq: exact, case-insensitive, never as wildcards.
    param(
        [object] $Ref,
        [object[]] $All,
        [object] $Target
    )
    if ($null -ne $Ref.Id -and "$($Ref.Id)" -ne '') {
        $wanted = [guid] "$($Ref.Id)"
        $found = @($All | Where-Object { $_.Id -eq $wanted })
    } else {
        $wanted = [string] $Ref.Name
        $found = @($All | Where-Object { $_.Name -eq $wanted })
    }
    if ($found.Count -eq 1) { return $found[0] }
    $text = Get-HvRefText -Ref $Ref
    if ($found.Count -eq 0) {
        $known = ($All | Select-Object -First 50 | ForEach-Object { $_.Name }) -join "`n"
        Write-HvError -ErrorId 'HvIntegration.VMNotFound' -Category 'ObjectNotFound' `
            -Message "Hyper-V was unable to find a virtual machine with name or id '$text'." `
            -Target $Target -Details $known
    } else {
        $ids = ($found | ForEach-Object { "$($_.Id)" }) -join "`n"
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
    foreach ($ref in $Refs) {
        $found = Resolve-HvVM -Ref $ref -All $All -Target (Get-HvRefText -Ref $ref)
        if ($null -ne $found) { $found }
    }
}

function ConvertTo-HvService {
    # Only the properties the records need; enums become their names here
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
        OperationalStatus          = [string[]] @($Service.OperationalStatus | ForEach-Object { $_.ToString() })
    }
}

function Get-HvComponentId {
    # The integration component GUID is the part of Id after the backslash.
    param([object] $Service)
    return ([string] $Service.Id).Split('\')[-1]
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
