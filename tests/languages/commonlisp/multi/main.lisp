(load (merge-pathnames "helper.lisp" *load-truename*))

(format t "twice=~D~%" (twice 21))
