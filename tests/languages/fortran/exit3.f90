program exit3
  implicit none
  stop 3
end program exit3
