(defun twice (n)
  (* 2 n))
