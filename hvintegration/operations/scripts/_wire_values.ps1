# Included by the session loop (_runner.ps1) and the psrp:// output command
# (_psrp_output.ps1) where each says "#include _wire_values.ps1", so both
# send the same plain values.
#
# Plain dictionaries, arrays, strings, numbers and booleans only: enums and
# other .NET values become their names, so ConvertTo-Json never writes an
# enum as a number, never wraps an array in {value, Count} and never stops
# at its -Depth.
function ConvertTo-HvWire($Value, [int]$Depth) {
    if ($null -eq $Value) { return $null }
    if ($Depth -gt 32) { throw 'hvintegration: an output object is nested too deeply' }
    if ($Value -is [enum]) { return $Value.ToString() }
    # Casts make fresh values: a value wrapped with extra members (as from
    # Get-Content) would otherwise serialise as an object in 5.1.
    $code = [int][Convert]::GetTypeCode($Value)
    if ($code -eq 3) { return [bool]$Value }
    if ($code -ge 5 -and $code -le 11) { return [long]$Value }
    if ($code -eq 12 -or $code -eq 15) { return [decimal]$Value }
    if ($code -eq 13 -or $code -eq 14) {
        if ([double]::IsNaN($Value) -or [double]::IsInfinity($Value)) { return [string]$Value }
        return [double]$Value
    }
    if ($code -eq 18 -or $code -eq 4) { return [string]$Value }
    if ($Value -is [Collections.IDictionary]) {
        $result = [ordered]@{}
        foreach ($k in $Value.Keys) { $result[[string]$k] = ConvertTo-HvWire $Value[$k] ($Depth + 1) }
        return $result
    }
    if ($Value -is [Management.Automation.PSCustomObject]) {
        $result = [ordered]@{}
        foreach ($member in $Value.PSObject.Members.Match('*', 'NoteProperty')) {
            $result[$member.Name] = ConvertTo-HvWire $member.Value ($Depth + 1)
        }
        return $result
    }
    if ($Value -is [Collections.IEnumerable]) { return , @(foreach ($i in $Value) { ConvertTo-HvWire $i ($Depth + 1) }) }
    return [string]$Value
}
