# Included by get_kvp_items.ps1 and set_kvp_items.ps1 where each says
# "#include _kvp_items.ps1".

function ConvertFrom-HvKvpXml {
    # The Name and Data of each embedded Msvm_KvpExchangeDataItem. Parsed as
    # XML, never evaluated; an item without a Name is skipped.
    param([string[]] $Items)
    foreach ($text in @($Items)) {
        if ([string]::IsNullOrEmpty($text)) { continue }
        $document = [System.Xml.XmlDocument]::new()
        $document.XmlResolver = $null
        $document.LoadXml($text)
        $name = $document.SelectSingleNode("/INSTANCE/PROPERTY[@NAME='Name']/VALUE")
        $data = $document.SelectSingleNode("/INSTANCE/PROPERTY[@NAME='Data']/VALUE")
        if ($null -eq $name) { continue }
        $value = ''
        if ($null -ne $data) { $value = [string] $data.InnerText }
        [pscustomobject] @{
            Name = [string] $name.InnerText
            Data = $value
        }
    }
}
