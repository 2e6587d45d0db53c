const fs = require("fs");
console.error("failing on purpose");
process.exit(3);
