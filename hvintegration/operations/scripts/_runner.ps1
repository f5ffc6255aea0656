# The session loop of every PowerShell transport: the second stage of the
# bootstrap (_bootstrap.ps1), which receives it as its first stdin line
# (lines joined by tabs) and runs it with the stdin reader it opened.
# Wire contract, version 1 (hvintegration/transport/_powershell_wire.py is
# the other side):
# - stdin: one JSON request per line, pure ASCII: v, id, operation, script
#   and parameters. Every string inside parameters carries a one-character
#   '~' tag, so that no JSON reader turns a name that looks like a date into
#   a DateTime.
# - stdout: one line per request, '#hvi1:' and a pure ASCII JSON envelope:
#   v, id, output (objects), errors (non-terminating records), error (the
#   terminating record or null). Each answer starts with a line end of its
#   own, so that text the outer shell wrote without one (a banner, a
#   prompt) cannot run into it.
# - stdin closing while an operation runs stops it and ends the process, so
#   closing the channel leaves nothing behind even where signals do not
#   reach (Windows OpenSSH).
# Operations run in a private runspace that lives as long as the process
# (modules load once), with no host: Write-Host, progress, warnings and
# verbose text cannot reach stdout.
# Requests are parsed by .NET calls, not the ConvertFrom-Json cmdlet:
# with module logging on, a cmdlet's bound parameters land in the event log
# (about_Logging_Windows), and a PowerShell Direct request carries the
# guest password.
param(
    [IO.TextReader] $Stdin
)

$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
$utf8 = [Text.UTF8Encoding]::new($false)
$stdout = [Console]::OpenStandardOutput()
$runspace = [runspacefactory]::CreateRunspace()
$runspace.Open()

# Windows PowerShell 5.1 (.NET Framework) has JavaScriptSerializer in
# System.Web.Extensions; PowerShell 7 (.NET) has System.Text.Json instead.
$coreEdition = $PSVersionTable.PSEdition -eq 'Core'
if (-not $coreEdition) {
    $webExtensions = 'System.Web.Extensions, Version=4.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35'
    [void][Reflection.Assembly]::Load($webExtensions)
    $serializer = [System.Web.Script.Serialization.JavaScriptSerializer]::new()
    $serializer.MaxJsonLength = [int]::MaxValue
}

function ConvertFrom-HvJsonElement($Element) {
    # A System.Text.Json element as dictionaries, arrays and plain values.
    switch ([string]$Element.ValueKind) {
        'Object' {
            $result = [ordered]@{}
            foreach ($member in $Element.EnumerateObject()) {
                $result[$member.Name] = ConvertFrom-HvJsonElement $member.Value
            }
            return $result
        }
        'Array' { return , @(foreach ($item in $Element.EnumerateArray()) { ConvertFrom-HvJsonElement $item }) }
        'String' { return $Element.GetString() }
        'True' { return $true }
        'False' { return $false }
        'Number' {
            $whole = [long]0
            if ($Element.TryGetInt64([ref]$whole)) { return $whole }
            return $Element.GetDouble()
        }
    }
    return $null
}

function ConvertFrom-HvJson([string]$Text) {
    if ($coreEdition) {
        $document = [System.Text.Json.JsonDocument]::Parse($Text)
        try { return ConvertFrom-HvJsonElement $document.RootElement } finally { $document.Dispose() }
    }
    return $serializer.DeserializeObject($Text)
}

function ConvertFrom-HvWire($Value) {
    if ($Value -is [string]) { return $Value.Substring(1) }
    if ($Value -is [Collections.IDictionary]) {
        $result = [ordered]@{}
        foreach ($key in $Value.Keys) { $result[[string]$key] = ConvertFrom-HvWire $Value[$key] }
        return [pscustomobject]$result
    }
    if ($Value -is [Collections.IList]) { return , @(foreach ($i in $Value) { ConvertFrom-HvWire $i }) }
    return $Value
}

#include _wire_values.ps1

function ConvertTo-HvRecord($Record) {
    # Only a plain value: a failed item's index or name, never an object.
    $target = $Record.TargetObject
    if ($target -is [int] -or $target -is [long]) { $target = [long]$target }
    elseif ($target -is [bool]) { $target = [bool]$target }
    elseif ($null -ne $target) { $target = [string]$target }
    $details = ''
    if ($null -ne $Record.ErrorDetails) { $details = [string]$Record.ErrorDetails.RecommendedAction }
    [ordered]@{
        message = [string]$Record.Exception.Message
        error_id = [string]$Record.FullyQualifiedErrorId
        category = [string]$Record.CategoryInfo.Category
        exception_type = $Record.Exception.GetType().FullName
        target_object = $target
        details = $details
    }
}

function Write-HvEnvelope($Envelope) {
    $json = Microsoft.PowerShell.Utility\ConvertTo-Json -InputObject $Envelope -Depth 100 -Compress
    # ASCII only: no console code page or re-encoding shell can change it.
    $json = [regex]::Replace($json, '[^\x00-\x7e]', { param($m) '\u{0:x4}' -f [int]$m.Value[0] })
    # A line end first: the answer starts on a line of its own. (Two strings:
    # tree-sitter-powershell misreads a "#" right after an escape sequence.)
    $bytes = $utf8.GetBytes("`n" + "#hvi1:$json`n")
    $stdout.Write($bytes, 0, $bytes.Length)
    $stdout.Flush()
}

$next = $Stdin.ReadLineAsync()
while ($true) {
    $line = $next.GetAwaiter().GetResult()
    if ($null -eq $line) { break }
    if ($line -eq '') { $next = $Stdin.ReadLineAsync(); continue }
    # Reading ahead while the operation runs is how a closed stdin is seen.
    $next = $Stdin.ReadLineAsync()
    $envelope = [ordered]@{ v = 1; id = $null; output = @(); errors = @(); error = $null }
    $shell = [powershell]::Create()
    try {
        $request = ConvertFrom-HvJson $line
        $envelope.id = $request['id']
        $shell.Runspace = $runspace
        [void]$shell.AddScript([string]$request['script'], $true)
        $parameters = $request['parameters']
        foreach ($name in $parameters.Keys) {
            [void]$shell.AddParameter([string]$name, (ConvertFrom-HvWire $parameters[$name]))
        }
        $async = $shell.BeginInvoke()
        while (-not $async.AsyncWaitHandle.WaitOne(50)) {
            if ($next.IsCompleted -and $null -eq $next.Result) { [Environment]::Exit(3) }
        }
        # The output objects of the shipped scripts are flat records of
        # strings, booleans, whole numbers and string arrays: those values
        # are converted here, inline, and only anything else goes through
        # ConvertTo-HvWire. A function call per value would cost more than
        # the rest of the loop for thousands of records.
        $items = $shell.EndInvoke($async)
        $converted = [Collections.Generic.List[object]]::new($items.Count)
        foreach ($item in $items) {
            if ($item -isnot [Management.Automation.PSCustomObject]) {
                $converted.Add((ConvertTo-HvWire $item 0))
                continue
            }
            $row = [ordered]@{}
            foreach ($member in $item.PSObject.Members.Match('*', 'NoteProperty')) {
                $value = $member.Value
                if ($null -eq $value) { $row[$member.Name] = $null }
                elseif ($value -is [string]) { $row[$member.Name] = [string]$value }
                elseif ($value -is [bool]) { $row[$member.Name] = [bool]$value }
                elseif ($value -is [int] -or $value -is [long]) { $row[$member.Name] = [long]$value }
                elseif ($value -is [string[]]) { $row[$member.Name] = [string[]]$value }
                else { $row[$member.Name] = ConvertTo-HvWire $value 1 }
            }
            $converted.Add($row)
        }
        $envelope.output = $converted.ToArray()
    } catch {
        $failure = $_.Exception
        while ($failure -is [Management.Automation.MethodInvocationException] -and $null -ne $failure.InnerException) {
            $failure = $failure.InnerException
        }
        $record = $_
        if ($failure -is [Management.Automation.IContainsErrorRecord]) { $record = $failure.ErrorRecord }
        $envelope.error = ConvertTo-HvRecord $record
    }
    $envelope.errors = @(foreach ($record in $shell.Streams.Error) { ConvertTo-HvRecord $record })
    $shell.Dispose()
    Write-HvEnvelope $envelope
}
$runspace.Dispose()
