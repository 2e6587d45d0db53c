source [file join [file dirname [info script]] helper.tcl]
puts "sum=[helper::add 2 3] twice=[helper::twice 7]"
