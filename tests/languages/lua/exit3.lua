io.stderr:write("failing on purpose\n")
os.exit(3)
