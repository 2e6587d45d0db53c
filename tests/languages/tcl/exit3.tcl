puts stderr "failing on purpose"
exit 3
