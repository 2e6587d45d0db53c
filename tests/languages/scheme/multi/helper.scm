(define-module (helper)
  #:export (add twice))

(define (add a b) (+ a b))
(define (twice x) (* 2 x))
