"""Where documents come from: the uploads folder and Hyperion's backend document API."""
