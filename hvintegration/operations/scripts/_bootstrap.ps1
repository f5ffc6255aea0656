# The fixed first stage every PowerShell transport starts with
# -EncodedCommand; it stays tiny so the command line stays far below
# cmd.exe's 8,191 characters. It reads one line from stdin, the shipped
# session loop (_runner.ps1) base64-encoded as UTF-8, and runs it with the
# same stdin reader, which then carries the JSON requests. Nothing in it or
# in the loop comes from a caller. Comment lines and indentation are
# stripped before sending.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$hvStdin = [IO.StreamReader]::new([Console]::OpenStandardInput(), [Text.UTF8Encoding]::new($false))
$hvRunner = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($hvStdin.ReadLine()))
& ([scriptblock]::Create($hvRunner)) $hvStdin
