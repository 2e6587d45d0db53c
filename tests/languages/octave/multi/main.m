areas = [area(2, 3), area(4, 5)];
printf("areas=%d,%d total=%d\n", areas, sum(areas));
