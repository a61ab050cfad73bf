"""Statistics of per-sample gradient estimates: streaming float64 moments by group, the
summary of one run (bias test, variance interval, MSE, cosine, sign error), Student t
probabilities, and the rules that combine replicates. Imports nothing else of gradbench."""
