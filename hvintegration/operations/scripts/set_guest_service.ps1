# Start, stop or restart a Hyper-V guest service, or set its startup type
# (enable restores Manual, the trigger-start default of the vmic* services;
# disable sets Disabled). Doing what is already so changes nothing. Waits at
# most WaitSeconds for the service to reach its new status.
param(
    [string] $Name,
    [string] $Action,
    [int] $WaitSeconds = 30
)

Assert-HvGuestServiceName -Name $Name
$service = Microsoft.PowerShell.Management\Get-Service -Name $Name -ErrorAction 'SilentlyContinue'
if ($null -eq $service) {
    Write-HvError -ErrorId 'HvIntegration.GuestServiceNotFound' -Category 'ObjectNotFound' `
        -Message "The guest has no service named '$Name'." -Target $Name
    return
}
$wait = [TimeSpan]::FromSeconds($WaitSeconds)
$changed = $false
try {
    switch ($Action) {
        'start' {
            if ($service.Status -ne 'Running') {
                if ($service.StartType -eq 'Disabled') {
                    Write-HvError -ErrorId 'HvIntegration.GuestServiceDisabled' -Category 'InvalidOperation' `
                        -Message "The service '$Name' is disabled; enable it before starting it." -Target $Name
                    return
                }
                $service.Start()
                $service.WaitForStatus('Running', $wait)
                $changed = $true
            }
        }
        'stop' {
            if ($service.Status -ne 'Stopped') {
                $service.Stop()
                $service.WaitForStatus('Stopped', $wait)
                $changed = $true
            }
        }
        'restart' {
            # Checked first: stopping a disabled service that cannot start
            # again would leave it stopped.
            if ($service.StartType -eq 'Disabled') {
                Write-HvError -ErrorId 'HvIntegration.GuestServiceDisabled' -Category 'InvalidOperation' `
                    -Message "The service '$Name' is disabled; enable it before restarting it." -Target $Name
                return
            }
            if ($service.Status -ne 'Stopped') {
                $service.Stop()
                $service.WaitForStatus('Stopped', $wait)
            }
            $service.Start()
            $service.WaitForStatus('Running', $wait)
            $changed = $true
        }
        'enable' {
            if ($service.StartType -eq 'Disabled') {
                Microsoft.PowerShell.Management\Set-Service -Name $Name -StartupType 'Manual'
                $changed = $true
            }
        }
        'disable' {
            if ($service.StartType -ne 'Disabled') {
                Microsoft.PowerShell.Management\Set-Service -Name $Name -StartupType 'Disabled'
                $changed = $true
            }
        }
        default {
            throw [System.ArgumentException]::new("Unknown action '$Action'.")
        }
    }
} catch [System.ServiceProcess.TimeoutException] {
    $service.Refresh()
    Write-HvError -ErrorId 'HvIntegration.GuestServiceStuck' -Category 'OperationTimeout' `
        -Message "The service '$Name' is still $($service.Status) after $WaitSeconds seconds." -Target $Name
    return
} catch {
    # ServiceController wraps the Win32 error (5: access denied) one or two
    # levels deep (MethodInvocationException > InvalidOperationException).
    $denied = $false
    for ($inner = $_.Exception; $null -ne $inner; $inner = $inner.InnerException) {
        if ($inner -is [System.ComponentModel.Win32Exception] -and $inner.NativeErrorCode -eq 5) {
            $denied = $true
        }
    }
    if ($denied) {
        Write-HvError -ErrorId 'HvIntegration.AccessDenied' -Category 'PermissionDenied' `
            -Message "Access is denied: changing '$Name' needs a member of Administrators in the guest." -Target $Name
        return
    }
    Write-HvFailure -Failure $_ -Target $Name
    return
}
[pscustomobject] @{
    Changed = $changed
    Service = ConvertTo-HvGuestService -Service (Microsoft.PowerShell.Management\Get-Service -Name $Name)
}
