ld [0]
jeq #110, log
jeq #63, kill
ret #0x7fff0000
log:
ret #0x7ffc0000
kill:
ret #0x80000000
