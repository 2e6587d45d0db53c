;;; Copies standard input to standard output byte for byte.
(let ((in (sb-sys:make-fd-stream 0 :input t :element-type '(unsigned-byte 8) :buffering :full))
      (out (sb-sys:make-fd-stream 1 :output t :element-type '(unsigned-byte 8) :buffering :full))
      (buffer (make-array 4096 :element-type '(unsigned-byte 8))))
  (loop for end = (read-sequence buffer in)
        while (plusp end)
        do (write-sequence buffer out :end end))
  (finish-output out))
