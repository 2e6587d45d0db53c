const x: number = "string";
console.log(x);
