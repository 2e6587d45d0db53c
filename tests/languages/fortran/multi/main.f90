program main
  use helper, only: twice
  implicit none
  write (*, '(a, i0)') 'twice=', twice(21)
end program main
