(display "failing on purpose\n" (current-error-port))
(exit 3)
