# The fixed first stage every PowerShell transport starts with
# the encoded command argument; it stays tiny so the command line stays far below
# cmd.exe's 8,191 characters. It reads the shipped session loop
# (_runner.ps1) from the first stdin line, its lines joined by tabs (the
# loop has none), and runs it with the same stdin reader, which then carries
# the JSON requests. Nothing in it or in the loop comes from a caller. Comment lines
# and indentation are stripped before sending.
# Constrained Language refuses the .NET calls below, so the bootstrap first
# answers with one envelope whose id is null (a failure of the session, not
# of one request) and ends; it can only write it as pipeline output, the
# one way to stdout that mode allows. "about_Language_Modes": the
# LanguageMode property of the session state tells the mode.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$hvMode = [string] $ExecutionContext.SessionState.LanguageMode
if ($hvMode -ne 'FullLanguage') {
    ''
    '#hvi1:{"v":1,"id":null,"output":[],"errors":[],"error":{"message":"PowerShell runs in ' + $hvMode + ' mode.","error_id":"HvIntegration.LanguageModeUnsupported","category":"PermissionDenied","exception_type":"","target_object":null,"details":""}}'
    exit 1
}
$hvStdin = [IO.StreamReader]::new([Console]::OpenStandardInput(), [Text.UTF8Encoding]::new($false))
$hvRunner = $hvStdin.ReadLine().Replace("`t", "`n")
& ([scriptblock]::Create($hvRunner)) $hvStdin
