local helper = require("helper")
print(("sum=%d twice=%d"):format(helper.add(2, 3), helper.twice(7)))
