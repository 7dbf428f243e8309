// The Communicator over MPI.
