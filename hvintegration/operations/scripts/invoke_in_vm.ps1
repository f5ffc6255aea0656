# PowerShell Direct: run one of the library's guest scripts inside a VM over
# the VMBus, with no network path to the guest. The guest script arrives as
# the Script parameter (a fixed script shipped with the library) and its
# parameters as the Parameters object; the credential is built here from
# parameters and never appears in any script text.
param(
    [object] $VM,
    [string] $UserName,
    [string] $Password,
    [string] $Script,
    [object] $Parameters
)

Import-HvHyperV
$invoke = Microsoft.PowerShell.Core\Get-Command -Name 'Invoke-Command' -Module 'Microsoft.PowerShell.Core' `
    -CommandType 'Cmdlet'
if (-not $invoke.Parameters.ContainsKey('VMId')) {
    Write-HvError -ErrorId 'HvIntegration.PowerShellDirectUnsupported' -Category 'NotImplemented' `
        -Message 'PowerShell Direct needs a Windows 10 or Windows Server 2016 host or newer.' `
        -Target (Get-HvRefText -Ref $VM)
    return
}
$vmIndex = New-HvVMIndex -All @(Hyper-V\Get-VM)
$machine = Resolve-HvVM -Ref $VM -Index $vmIndex -Target (Get-HvRefText -Ref $VM)
if ($null -eq $machine) { return }
if ($machine.State -ne 'Running') {
    Write-HvError -ErrorId 'HvIntegration.VMNotRunning' -Category 'ResourceUnavailable' `
        -Message "The virtual machine '$($machine.Name)' is $($machine.State); PowerShell Direct needs it running." `
        -Target (Get-HvRefText -Ref $VM)
    return
}
$splat = @{}
if ($Parameters -is [System.Collections.IDictionary]) {
    foreach ($key in $Parameters.Keys) { $splat[[string] $key] = $Parameters[$key] }
} elseif ($null -ne $Parameters) {
    # Note members are what a deserialized or JSON-built object carries.
    foreach ($member in $Parameters.PSObject.Members.Match('*', 'NoteProperty')) {
        $splat[$member.Name] = $member.Value
    }
}
# Not ConvertTo-SecureString: with module logging on, a cmdlet's bound
# parameters land in the event log, and this one would be the password.
$secret = [System.Net.NetworkCredential]::new('', $Password).SecurePassword
$Password = $null
$credential = [System.Management.Automation.PSCredential]::new($UserName, $secret)
# -ErrorAction Continue: the guest's own non-terminating errors, and a
# session that cannot be opened, come back as error records beside any
# output instead of ending the call and losing that output.
Microsoft.PowerShell.Core\Invoke-Command -VMId $machine.Id -Credential $credential -ErrorAction 'Continue' `
    -ArgumentList $Script, $splat -ScriptBlock {
    param($InnerScript, $InnerParameters)
    $block = [scriptblock]::Create($InnerScript)
    & $block @InnerParameters
}
