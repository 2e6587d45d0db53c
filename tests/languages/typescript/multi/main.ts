import { add, twice } from "./helper";
console.log(`sum=${add(2, 3)} twice=${twice(7)}`);
