$stderr.puts "failing on purpose"
exit 3
