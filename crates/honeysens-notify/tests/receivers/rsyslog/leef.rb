version=2
# liblognorm rulebase for the LEEF 2.0 header (liblognorm has no LEEF type; the tab-delimited
# attributes are kept whole in "attrs" and split by the test).
rule=:LEEF:2.0|%vendor:char-to{"extradata":"|"}%|%product:char-to{"extradata":"|"}%|%version:char-to{"extradata":"|"}%|%eventid:char-to{"extradata":"|"}%|x09|%attrs:rest%
