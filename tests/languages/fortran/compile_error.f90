program broken
  implicit none
  integer :: x
  x = undefined_thing + 1
  print *, x
end program broken
