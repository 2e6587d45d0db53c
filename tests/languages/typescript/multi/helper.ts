export function add(a: number, b: number): number { return a + b; }
export const twice = (x: number): number => 2 * x;
