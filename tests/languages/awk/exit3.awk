BEGIN {
    print "failing on purpose" > "/dev/stderr"
    exit 3
}
