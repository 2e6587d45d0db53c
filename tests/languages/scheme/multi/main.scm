(use-modules (helper))

(format #t "sum=~a twice=~a~%" (add 2 3) (twice 7))
