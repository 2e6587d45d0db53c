program main
  use util, only: twice
  implicit none
  write (*, '(a, i0)') 'twice=', twice(21)
end program main
