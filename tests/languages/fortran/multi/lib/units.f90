module units
  implicit none
  integer, parameter :: scale = 2
end module units
