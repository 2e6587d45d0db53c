local M = {}

function M.add(a, b) return a + b end
function M.twice(x) return 2 * x end

return M
