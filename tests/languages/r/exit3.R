message("failing on purpose")
quit(status = 3)
