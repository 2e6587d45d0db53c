let twice n = 2 * n
