namespace eval helper {
    proc add {a b} { expr {$a + $b} }
    proc twice {x} { expr {2 * $x} }
}
