version=2
# liblognorm rulebase: the whole MSG is CEF, parsed by liblognorm's own cef field type.
rule=:%cef:cef%
