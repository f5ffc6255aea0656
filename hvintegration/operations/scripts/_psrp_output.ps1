# The second command of every psrp:// pipeline. The operation's own script
# is the first command, unchanged; its output objects arrive here as
# pipeline input ($input), and leave as ONE compact string: a JSON array of
# the same plain values that the session loop (_runner.ps1) puts in the
# "output" of its envelope for local:// and ssh://. The client parses that
# string once, instead of PSRP serialising every object as CLIXML and the
# client deserialising each property.
# Error records are left alone: non-terminating ones travel as PSRP error
# records, and a terminating error fails the pipeline before this command
# writes anything, exactly as without it.
# The script has no begin or process block: its body is the end block, which
# runs after the operation's script has finished, so a refusal by the
# operation's prelude (a constrained endpoint) always comes first.

#include _wire_values.ps1

# The output objects of the shipped scripts are flat records of strings,
# booleans, whole numbers and string arrays: those values are converted here,
# inline, as the session loop does, and only anything else goes through
# ConvertTo-HvWire. A function call per value would cost the host more than
# the rest of the pipeline for thousands of records.
$hvConverted = [Collections.Generic.List[object]]::new()
foreach ($hvItem in $input) {
    if ($hvItem -isnot [Management.Automation.PSCustomObject]) {
        $hvConverted.Add((ConvertTo-HvWire $hvItem 0))
        continue
    }
    $hvRow = [ordered]@{}
    foreach ($hvMember in $hvItem.PSObject.Members.Match('*', 'NoteProperty')) {
        $hvValue = $hvMember.Value
        if ($null -eq $hvValue) { $hvRow[$hvMember.Name] = $null }
        elseif ($hvValue -is [string]) { $hvRow[$hvMember.Name] = [string]$hvValue }
        elseif ($hvValue -is [bool]) { $hvRow[$hvMember.Name] = [bool]$hvValue }
        elseif ($hvValue -is [int] -or $hvValue -is [long]) { $hvRow[$hvMember.Name] = [long]$hvValue }
        elseif ($hvValue -is [string[]]) { $hvRow[$hvMember.Name] = [string[]]$hvValue }
        else { $hvRow[$hvMember.Name] = ConvertTo-HvWire $hvValue 1 }
    }
    $hvConverted.Add($hvRow)
}
$hvOutput = $hvConverted.ToArray()
# -InputObject, never the pipeline: ConvertTo-Json serialises a single input
# as it is and several as an array, so piped, a one-element array would be
# written as its element alone and an empty one not at all (EndProcessing in
# PowerShell's ConvertToJsonCommand.cs). -Depth 100 is the most it accepts;
# the conversion above stops at 32 levels, so nothing is cut off at -Depth.
# Windows PowerShell 5.1 serialises with JavaScriptSerializer and lifts its
# MaxJsonLength to Int32.MaxValue, so a large batch is not cut short either.
$hvJson = Microsoft.PowerShell.Utility\ConvertTo-Json -InputObject $hvOutput -Depth 100 -Compress
# ASCII only, as the session loop writes its envelope: the string crosses
# PSRP as CLIXML, which cannot carry U+FFFE or U+FFFF (its serialiser escapes
# only control characters, surrogates and "_x", in EncodeString of
# PowerShell's serialization.cs), and a client's XML parser refuses them, so
# a VM named with one would break the runspace pool. Each UTF-16 unit beyond
# U+007E becomes a JSON \uXXXX escape, which the client's JSON parser reads
# back to the same text.
[regex]::Replace($hvJson, '[^\x00-\x7e]', { param($m) '\u{0:x4}' -f [int]$m.Value[0] })
