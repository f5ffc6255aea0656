# Get-Service for Hyper-V guest services inside a Windows guest. A service
# an older guest does not have is reported with Present = $false, so one
# absent service never fails the whole listing.
param(
    [string[]] $Name
)

foreach ($serviceName in $Name) {
    Assert-HvGuestServiceName -Name $serviceName
    $service = Microsoft.PowerShell.Management\Get-Service -Name $serviceName -ErrorAction 'SilentlyContinue'
    if ($null -eq $service) {
        [pscustomobject] @{
            Name         = $serviceName
            Present      = $false
            DisplayName  = ''
            Status       = ''
            StartType    = ''
            ComputerName = [string] $env:COMPUTERNAME
        }
        continue
    }
    ConvertTo-HvGuestService -Service $service
}
